"""report.md's "Model search" section: every candidate `edgernn train --auto` tried."""

from __future__ import annotations

from typing import Any


def search_section(meta: dict[str, Any]) -> str | None:
    """The candidates in the order they ran, the chosen one in bold; None without --auto."""
    auto = meta.get("auto")
    if not auto:
        return None
    rows = []
    for i, c in enumerate(auto["candidates"]):
        trained = c["status"] == "trained"
        cells = [
            str(i + 1),
            str(c.get("frame", 1)),
            str(c["hidden_size"]),
            c["init"],
            f"{c['lr']:g}",
            f"{c['input_clip']:g}" if c.get("input_clip") else "-",
            f"{c['flash_bytes']:,}",
            f"{c['val_accuracy']:.4f}" if trained else "-",
            f"{c['val_int8_accuracy']:.4f}" if trained and c.get("val_int8_accuracy") is not None else "-",
            f"{c['val_nll']:.4f}" if trained else "-",
            str(c["epochs_run"]) if trained else c["status"],
        ]
        rows.append([f"**{v}**" for v in cells] if i == auto["chosen"] else cells)
    head = [
        "#",
        "frame",
        "hidden",
        "init",
        "lr",
        "input clip",
        "flash (B)",
        "val accuracy",
        "val int8",
        "val loss",
        "epochs",
    ]
    table = "\n".join(
        "| " + " | ".join(r) + " |"
        for r in [
            head,
            ["---:", "---:", "---:", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:"],
            *rows,
        ]
    )
    limits = f"budget {auto['budget_minutes']:g} min" + (
        f", at most {auto['max_flash']:,} B of flash" if auto.get("max_flash") else ""
    )
    scoring = f"scored by {auto['scoring']}; " if auto.get("scoring") else ""
    skipped = auto.get("skipped_by_budget", [])
    stop = ""
    if skipped:
        stop = (
            f" The budget skipped {len(skipped)} candidate(s) ({'; '.join(skipped)}): which ones depends"
            " on the machine's speed, so a larger budget is needed for a search every machine repeats."
        )
    elif auto.get("stopped_by_budget"):  # a checkpoint from before skipped_by_budget was recorded
        stop = " The budget skipped candidates."
    return (
        f"`edgernn train --auto` ({limits}) chose candidate {auto['chosen'] + 1} by validation "
        f"accuracy (the lower of float and int8 where int8 was measured), then validation loss; "
        f"{scoring}the test split played no part.{stop}\n\n{table}"
    )
