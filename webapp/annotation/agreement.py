"""Inter-annotator agreement of a campaign: Krippendorff's alpha, raw and first-error agreement.

Alpha comes from the `krippendorff` package (reliability data is annotators x units,
NaN where an annotator gave no value): ordinal for step ratings (-1/0/+1) and rubric
scores (1-5), nominal for pairwise choices. Step ratings after an annotator's first
error are structurally missing (NaN), not disagreements. Step units are compared only
between labels made on the same segmentation; labels with an edited segmentation that
nobody else shares drop out of the per-step numbers but still count for the
first-error agreement (which is read on the unit index).

Raw agreement is the share of agreeing annotator pairs over every unit rated by two or
more. Skewed labels (most steps +1) make alpha low while raw agreement is high: show
both, as the research notes recommend. Gold items are left out (they score annotators).
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Hashable, Sequence
from itertools import combinations
from typing import Any, Literal

import krippendorff
import numpy as np
from django.contrib.postgres.aggregates import ArrayAgg
from django.core.cache import cache
from django.db.models import Count, Max, OuterRef, Subquery

from webapp.annotation.models import Adjudication, Campaign, Item, Label, TaskType

RUBRIC_DIMENSIONS = ("correctness", "soundness", "efficiency", "clarity")
PAIRWISE_CHOICES = ("a", "b", "tie", "both_bad")

Unit = Hashable
# unit -> annotator id -> value
Ratings = dict[Unit, dict[int, float]]


def alpha(
    ratings: Ratings, *, level: Literal["nominal", "ordinal"], domain: Sequence[float]
) -> float | None:
    """Return Krippendorff's alpha, or None when it is undefined.

    Undefined: fewer than one unit with two values, or a single value in the data
    (no variation to agree on).
    """
    units = [u for u, by in ratings.items() if len(by) >= 2]
    if not units:
        return None
    raters = sorted({a for u in units for a in ratings[u]})
    row = {a: i for i, a in enumerate(raters)}
    data = np.full((len(raters), len(units)), np.nan)
    for j, u in enumerate(units):
        for a, v in ratings[u].items():
            data[row[a], j] = v
    values = set(data[~np.isnan(data)].tolist())
    if len(values) < 2:
        return None
    value = krippendorff.alpha(
        reliability_data=data, level_of_measurement=level, value_domain=list(domain)
    )
    return None if math.isnan(value) else round(float(value), 4)


def raw_agreement(ratings: Ratings) -> float | None:
    """Return the share of annotator pairs that agree, over units rated by two or more."""
    agree = pairs = 0
    for by in ratings.values():
        for x, y in combinations(by.values(), 2):
            pairs += 1
            agree += x == y
    return round(agree / pairs, 4) if pairs else None


def _first_error(value: dict[str, Any]) -> int | None:
    for i, step in enumerate(value["steps"]):
        if step["rating"] == -1:
            return i
    return None


def _step_numbers(
    labels: list[Label],
) -> tuple[dict[str, Any], dict[int, list[int]], Ratings]:
    """Return per-step and first-error agreement, first-error pair results per annotator,
    and the per-step ratings."""
    by_item: dict[int, list[Label]] = defaultdict(list)
    for lab in labels:
        by_item[lab.item_id].append(lab)
    ratings: Ratings = {}
    exact = within = pairs = 0
    mine: dict[int, list[int]] = defaultdict(list)
    for item_id, group in by_item.items():
        # Compare per-step ratings only among labels sharing the same units.
        by_units: dict[tuple[Any, ...], list[Label]] = defaultdict(list)
        for lab in group:
            key = tuple((u["start"], u["end"], u["answer"]) for u in lab.value["units"])
            by_units[key].append(lab)
        for key, same in by_units.items():
            if len(same) < 2:
                continue
            for i in range(len(key)):
                unit: dict[int, float] = {}
                for lab in same:
                    r = lab.value["steps"][i]["rating"]
                    if r is not None:
                        unit[lab.annotator_id] = float(r)
                if unit:
                    ratings[(item_id, key, i)] = unit
        for x, y in combinations(group, 2):
            fx, fy = _first_error(x.value), _first_error(y.value)
            same_first = fx == fy
            near = same_first or (fx is not None and fy is not None and abs(fx - fy) <= 1)
            pairs += 1
            exact += same_first
            within += near
            mine[x.annotator_id].append(int(same_first))
            mine[y.annotator_id].append(int(same_first))
    result = {
        "alpha": alpha(ratings, level="ordinal", domain=(-1, 0, 1)),
        "raw": raw_agreement(ratings),
        "first_error_exact": round(exact / pairs, 4) if pairs else None,
        "first_error_within_1": round(within / pairs, 4) if pairs else None,
        "units": sum(1 for by in ratings.values() if len(by) >= 2),
        "items": sum(1 for g in by_item.values() if len(g) >= 2),
    }
    return result, mine, ratings


def _pair_results(ratings: Ratings, into: dict[int, list[int]]) -> None:
    for by in ratings.values():
        for (a, x), (b, y) in combinations(by.items(), 2):
            into[a].append(int(x == y))
            into[b].append(int(x == y))


def campaign_agreement(*, campaign: Campaign) -> dict[str, Any]:
    """Return agreement per task type (and rubric dimension) and per annotator."""
    labels = list(
        Label.objects.filter(campaign=campaign, item__is_gold=False)
        .select_related("annotator")
        .only("item_id", "annotator_id", "annotator__username", "task_type", "value")
    )
    names = {lab.annotator_id: lab.annotator.username for lab in labels}
    per_annotator: dict[int, list[int]] = defaultdict(list)
    counts: dict[int, int] = defaultdict(int)
    for lab in labels:
        counts[lab.annotator_id] += 1

    steps, first_errors, step_ratings = _step_numbers(
        [lab for lab in labels if lab.task_type == TaskType.STEP_LABELS]
    )
    _pair_results(step_ratings, per_annotator)

    rubric: dict[str, Any] = {}
    for dim in RUBRIC_DIMENSIONS:
        ratings: Ratings = {}
        for lab in labels:
            if lab.task_type == TaskType.RUBRIC:
                ratings.setdefault(lab.item_id, {})[lab.annotator_id] = float(lab.value[dim])
        rubric[dim] = {
            "alpha": alpha(ratings, level="ordinal", domain=(1, 2, 3, 4, 5)),
            "raw": raw_agreement(ratings),
            "items": sum(1 for by in ratings.values() if len(by) >= 2),
        }
        _pair_results(ratings, per_annotator)

    pairwise: dict[str, Any] = {}
    for part in ("reasoning", "answer"):
        ratings = {}
        for lab in labels:
            if lab.task_type == TaskType.PAIRWISE:
                ratings.setdefault(lab.item_id, {})[lab.annotator_id] = float(
                    PAIRWISE_CHOICES.index(lab.value[part])
                )
        pairwise[part] = {
            "alpha": alpha(ratings, level="nominal", domain=(0, 1, 2, 3)),
            "raw": raw_agreement(ratings),
            "items": sum(1 for by in ratings.values() if len(by) >= 2),
        }
        _pair_results(ratings, per_annotator)

    return {
        "step_labels": steps,
        "rubric": rubric,
        "pairwise": pairwise,
        "per_annotator": [
            {
                "annotator_id": uid,
                "username": names[uid],
                "labels": counts[uid],
                "raw_agreement": _share(per_annotator.get(uid)),
                "first_error_agreement": _share(first_errors.get(uid)),
            }
            for uid in sorted(names, key=lambda u: names[u])
        ],
    }


def _share(results: list[int] | None) -> float | None:
    return round(sum(results) / len(results), 4) if results else None


# A safety net only: a fingerprint change is what makes a cached result stale.
AGREEMENT_CACHE_SECONDS = 6 * 3600


def _per_campaign(rows: Any, field: Any, *, by: str = "campaign") -> Subquery:
    # One aggregate over a campaign's rows, as a subquery (no join fan-out).
    return Subquery(rows.order_by().values(by).annotate(v=field).values("v")[:1])


def agreement_fingerprint(*, campaign: Campaign) -> str:
    """Return a cheap digest of what the agreement depends on, in one query.

    Labels are only ever added or deleted (ids grow), so their count and highest id
    change with any write; the gold item ids catch an item turning gold or ordinary
    (gold items are left out of the numbers); adjudications by count and last update.
    """
    labels = Label.objects.filter(campaign=OuterRef("pk"))
    adjudications = Adjudication.objects.filter(item__campaign=OuterRef("pk"))
    row = (
        Campaign.objects.filter(pk=campaign.pk)
        .annotate(
            n_labels=_per_campaign(labels, Count("id")),
            top_label=_per_campaign(labels, Max("id")),
            gold=_per_campaign(
                Item.objects.filter(campaign=OuterRef("pk"), is_gold=True),
                ArrayAgg("id", order_by="id"),
            ),
            n_adjudications=_per_campaign(adjudications, Count("id"), by="item__campaign"),
            adjudicated_at=_per_campaign(adjudications, Max("updated_at"), by="item__campaign"),
        )
        .values_list("n_labels", "top_label", "gold", "n_adjudications", "adjudicated_at")
        .get()
    )
    text = repr(tuple(v.isoformat() if hasattr(v, "isoformat") else v for v in row))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cached_campaign_agreement(*, campaign: Campaign) -> dict[str, Any]:
    """Return `campaign_agreement`, recomputed only when its labels or adjudications changed.

    The campaign page polls its detail; without this every poll of every open tab would
    reload every label and rerun alpha.
    """
    key = f"annotation:agreement:{campaign.pk}:{agreement_fingerprint(campaign=campaign)}"
    hit = cache.get(key)
    if hit is not None:
        return dict(hit)
    value = campaign_agreement(campaign=campaign)
    cache.set(key, value, AGREEMENT_CACHE_SECONDS)
    return value
