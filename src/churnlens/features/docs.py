"""The feature catalogue as Markdown, generated from the registry (``docs/features.md``).

    uv run python -m churnlens.features.docs > docs/features.md
"""

from __future__ import annotations

import sys

from churnlens.features.registry import (
    FAMILIES,
    PILLARS_ORDER,
    SLUG_LENGTH,
    TIMESTAMP_RULE,
    VOCABULARY_SIZE,
    VocabularyEvent,
    declared,
    feature_sets,
)


def catalogue() -> str:
    """The declared features by pillar, then the families a build expands over its history."""
    registry = declared()
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
    lines += ["## Event vocabulary (families)", "",
              f"Expanded at build time over the history's {VOCABULARY_SIZE} most frequent event "
              "types (ties by name), one feature per event type and window. An event name is "
              "spelt in feature names as its slug: lower case, runs of other characters as "
              f"one `_`, at most {SLUG_LENGTH} characters; names whose slugs collide each get "
              "an 8-digit tag of their own name appended (`add_to_cart_0e940835`). The chosen "
              "event types and slugs are recorded in the snapshot manifest and in each model "
              "bundle.", "",
              "| family | feature names | pillar | definition | unit | windows | applies to | "
              "example sentence |",
              "|---|---|---|---|---|---|---|---|"]
    for template in FAMILIES.values():
        windows = ", ".join(f"{d} days" for d in template.days)
        example = template.feature(VocabularyEvent("add to cart", "add_to_cart"),
                                   template.days[0]).explain(3)
        lines.append(f"| `{template.name}` | `{template.pattern}` | {template.pillar} | "
                     f"{template.description} | {template.unit} | {windows} | "
                     f"{template.applies_to} | {example} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(catalogue())
