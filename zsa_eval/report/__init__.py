"""The views of finished runs: each run's report.html, the leaderboard, comparisons, the gates and the published
figures beside a run's measurement, and the reproducibility page (`python -m zsa_eval.report`). They read what each run
declares in its metrics.json (and the files zsa_eval.store wrote) and know no task but through zsa_eval.tasks.registry;
nothing below them imports them."""
