"""The statistics of back-to-back pairs, shared by the bench scripts' summaries.

A goal measured in pairs (bench-http.sh for issue 8, bench-redis.sh for issue 5) is
judged on the median of the pairs' ratios; the rest describe the spread.
"""

import math
import statistics


def pair(a, b):
    """The pair of figures (a, b) from two text fields, or None when either run gave none."""
    try:
        a, b = float(a), float(b)
    except ValueError:
        return None
    return (a, b) if a > 0 and b > 0 else None


def summary(pairs):
    """For pairs [(a, b), ...] of one goal, each pair's ratio is b / a: the median ratio
    (the goal's figure), the geometric mean, the ratio of sums, the lowest and highest
    pair, and the median of each side."""
    ratios = [b / a for a, b in pairs]
    return {
        "pairs": len(pairs),
        "median": statistics.median(ratios),
        "geo": math.exp(statistics.mean(math.log(r) for r in ratios)),
        "sums": sum(b for _, b in pairs) / sum(a for a, _ in pairs),
        "low": min(ratios),
        "high": max(ratios),
        "median_a": statistics.median(a for a, _ in pairs),
        "median_b": statistics.median(b for _, b in pairs),
    }


def row(s):
    """The Markdown cells every pairs table shares: pairs | median | geometric mean | ratio
    of sums | lowest | highest | median of a | median of b."""
    return (f"{s['pairs']} | {s['median']:.3f}x | {s['geo']:.3f}x | {s['sums']:.3f}x | {s['low']:.3f}x"
            f" | {s['high']:.3f}x | {s['median_a']:,.0f} | {s['median_b']:,.0f}")
