"""The dataset card (README.md) of an export directory: the YAML header Hugging Face reads (configs with the
split files, features, split sizes, licence) and how the set was made."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from mementos.warehouse.export.spec import ExportKind

CARD = "README.md"  # the Hugging Face dataset card: `datasets.load_dataset(DIR)` reads its configs


def _feature(t: pa.DataType) -> dict:
    """A column type as the `features` of a Hugging Face dataset card (the types the records use)."""
    if pa.types.is_list(t) and pa.types.is_struct(t.value_type):
        return {"list": [{"name": f.name, **_feature(f.type)} for f in t.value_type]}
    names = {pa.string(): "string", pa.int32(): "int32", pa.int64(): "int64", pa.bool_(): "bool"}
    return {"dtype": names[t]}


def _source_licence(source: str | None) -> str | None:
    """The `license:` of the source dataset's card, when the source is a directory in the hub layout."""
    import yaml

    try:
        text = (Path(source) / CARD).read_text(encoding="utf-8") if source and Path(source).is_dir() else ""
    except OSError:
        return None
    if not text.startswith("---"):
        return None
    try:
        header = yaml.safe_load(text.split("---", 2)[1]) or {}
    except (yaml.YAMLError, IndexError):
        return None
    licence = header.get("license") if isinstance(header, dict) else None
    return licence if isinstance(licence, str) else None


def dataset_card(manifest: dict, schema: pa.Schema) -> str:
    """README.md for the export directory: a YAML header Hugging Face reads (configs with the split files,
    features, split sizes, licence) and how the set was made."""
    import yaml

    runs = manifest["ingest_runs"]
    licences = {_source_licence(r["source"]) for r in runs}
    licence = licences.pop() if len(licences) == 1 and None not in licences else None
    # `datasets` cannot load a split of zero rows ("corresponds to no data"): an empty split keeps its file
    # but is not in the configs
    splits = {name: s for name, s in manifest["splits"].items() if s["rows"]}
    empty = [name for name, s in manifest["splits"].items() if not s["rows"]]
    header = {
        "license": licence or "unknown",
        "pretty_name": f"Memento training set: {manifest['kind']}",
        "task_categories": ["text-generation"],
        "tags": ["memento", "reasoning", "chat", manifest["kind"]],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": name, "path": s["file"]} for name, s in splits.items()]}],
        "dataset_info": {
            "features": [{"name": f.name, **_feature(f.type)} for f in schema],
            "splits": [{"name": name, "num_bytes": s["bytes"], "num_examples": s["rows"]} for name, s in splits.items()],
        },
    }
    f, near = manifest["filters"], manifest["near_duplicates"]
    lines = [
        "---", yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=1000).rstrip(), "---", "",
        f"# Memento training set: `{manifest['kind']}`", "",
        f"Chat examples of the `{manifest['kind']}` kind ({KIND_DESCRIPTIONS[manifest['kind']]}), written by "
        f"`mementos export` from the export view `{manifest['model']}` (text layout version "
        f"{manifest['layout_version']}). Load with `datasets.load_dataset(\"<this directory>\")`.", "",
        "## Splits", "",
        "| split | file | examples | traces | bytes |", "|---|---|---:|---:|---:|",
        *[f"| {name} | {s['file']} | {s['rows']:,} | {s['traces']:,} | {s['bytes']:,} |"
          for name, s in manifest["splits"].items()],
        *(["", f"Empty, so not in the configs (`datasets` cannot load a split of no rows): {', '.join(empty)}."]
          if empty else []),
        "", "## How it was made", "",
        "Source: " + ("; ".join(f"`{r['dataset']}` from {r['source']} (run {r['run_id']}, {r['traces']:,} traces, "
                                f"ingested {r['finished_at']})" for r in runs) or "none") + ".",
        f"Licence: {'carried from the source dataset card: ' + licence if licence else 'unknown: see the source dataset'}.",
        "",
        f"- seed {f['seed']}; split fractions " + ", ".join(f"{n}={v:g}" for n, v in f["split"].items())
        + "; a problem and its near-duplicates go to one split",
        f"- near-duplicates: {near['method']}, Jaccard threshold {near['threshold']} ({near['permutations']} "
        f"permutations, {near['bands']} bands of {near['rows_per_band']} rows); {near['problems']:,} distinct "
        f"problems, {near['groups_merged']:,} groups of near-duplicates ({near['problems_in_them']:,} problems)",
        f"- flagged traces {'kept' if f['include_flagged'] else 'left out'}; domain {f['domain'] or 'any'}; "
        f"max tokens {f['max_tokens'] or 'none'}; outliers excluded: {_listing(f['exclude_outliers'])}; "
        f"exact duplicates {f['duplicates']}",
        f"- {manifest['candidates']:,} candidate examples; left out: "
        + (", ".join(f"{n:,} {r}" for r, n in manifest["left_out"].items() if n) or "nothing")
        + ("" if not manifest["left_out_outliers"] else " (outliers by reason: " + ", ".join(
            f"{n:,} {r}" for r, n in manifest["left_out_outliers"].items()) + ")"),
        f"- `n_tokens`: {manifest['token_count']}",
        "", "`manifest.json` beside this card has the same and more (model versions and fingerprints, "
        "ingest runs, per-split sha256 and token statistics).", "",
    ]
    return "\n".join(lines)


def _listing(value) -> str:
    return ", ".join(value) if isinstance(value, list) else value or "none"


KIND_DESCRIPTIONS = {
    ExportKind.MEMENTO: "the problem, then the response with its block and memento markup",
    ExportKind.COMPRESSED: "the problem, then every memento (blocks evicted) and the answer",
    ExportKind.SUMMARIZE: "one example per block: an instruction and the block, then its memento",
    ExportKind.PLAIN: "the problem, then the blocks without any memento markup, and the answer",
}
