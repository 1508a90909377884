"""The kinds of record QA keeps in the store's labels zone (governance/store.py ``LABEL_KINDS``), named once."""

SAMPLE_KIND = "samples"  # <week>: the week's drawn sample and its design (qa/weekly_sample.py)
TASK_KIND = "tasks"  # <call_id>: where the call's review task lives in Label Studio
REVIEW_KIND = "reviews"  # <call_id>: the call's reconciled, redacted review (flows/qa_review.py)
