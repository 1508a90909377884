"""Does the customer-sentiment scorer agree with real callers? Its scores against HarperValleyBank ratings.

For every call of the shipped sample (``data/sample/harpervalley/calls.jsonl``, 80 role-played
bank calls) the caller's turns go through ``core.sentiment.progression``; the opening, closing and
change of sentiment are ranked against the caller's post-call rating of the agent
(``partner_rating``, 0-10) with Spearman's rho and a 95% percentile bootstrap interval over calls,
for plain VADER and for voiceloop's scorer (VADER + the contact-centre lexicon). Prints one JSON line
per figure, then the distribution of the ratings and how many calls each scorer says ended on a
negative note (compound < -0.05, VADER's own neutral band).

    .venv/bin/python benchmarks/sentiment_validation.py [--resamples 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
from collections import Counter

from common import emit  # benchmarks/common.py

from core.harpervalley import SCORERS, load_harpervalley_sample, validate
from core.sentiment import progression

NEGATIVE = -0.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples over calls")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    calls = load_harpervalley_sample()
    for figure in validate(calls, n_boot=args.resamples, seed=args.seed):
        emit(figure="spearman_rho_vs_caller_rating", scorer=figure.scorer, moment=figure.moment,
             rho=round(figure.rho, 4), ci95_low=round(figure.low, 4), ci95_high=round(figure.high, 4),
             n_calls=figure.n, resamples=args.resamples, seed=args.seed)

    ratings = [call.caller_rating for call in calls if call.caller_rating is not None]
    emit(figure="caller_ratings", n_calls=len(calls), n_rated=len(ratings),
         n_below_10=sum(rating < 10 for rating in ratings),
         distribution={str(k): v for k, v in sorted(Counter(ratings).items())})
    for name, scorer in SCORERS.items():
        ends = [p.end for call in calls if (p := progression(call.caller_texts, scorer=scorer)) is not None]
        emit(figure="negative_call_endings", scorer=name, threshold=NEGATIVE,
             n_negative=sum(end < NEGATIVE for end in ends), n_calls=len(ends),
             mean_end=round(sum(ends) / len(ends), 4))


if __name__ == "__main__":
    main()
