"""The feature catalogue as Markdown, generated from the registry (``docs/features.md``).

    uv run python -m churnlens.features.docs > docs/features.md
"""

from __future__ import annotations

import sys

from churnlens.features.registry import PILLARS_ORDER, TIMESTAMP_RULE, feature_sets, load_all


def catalogue() -> str:
    registry = load_all()
    lines = [
        "# Feature catalogue",
        "",
        "Generated from the feature registry (`src/churnlens/features/`); do not edit by hand:",
        "`uv run python -m churnlens.features.docs > docs/features.md`.",
        "",
        f"**Point-in-time rule.** {TIMESTAMP_RULE}",
        "",
    ]
    for name, feature_set in feature_sets().items():
        lines.append(f"Feature set `{name}`: {len(feature_set.features)} features. "
                     f"{feature_set.description}")
    lines.append("")
    for pillar in PILLARS_ORDER:
        members = [f for f in registry.values() if f.pillar == pillar]
        lines += [f"## {pillar.capitalize()} ({len(members)})", "",
                  "| feature | definition | unit | window | reads | example sentence |",
                  "|---|---|---|---|---|---|"]
        for f in members:
            window = f"{f.window_days} days" if f.window_days else ""
            reads = ", ".join(f.inputs) if f.inputs else ", ".join(f.needs)
            example = f.explain("growth" if f.kind == "category" else 0.42 if f.unit in (
                "share", "ratio") else 3)
            lines.append(f"| `{f.name}` | {f.description} | {f.unit} | {window} | {reads} | "
                         f"{example} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(catalogue())
