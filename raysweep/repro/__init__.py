"""Do the seed papers' claims hold? Reads the reproduction sweeps (search_spaces/reproduce/<dataset>/*.yaml, run by
``scripts/reproduce.sh``) from their sweep state and writes

* ``bench/results/claims.json``: one row per configuration (mean ± std over its seeds of clean, PGD-20 and
  AutoAttack test accuracy, training time and cost, plus its MLflow run id) and one verdict per claim and dataset;
* ``bench/results/curves/<experiment>.csv``: each row's per-epoch validation curve, per seed, for the sweeps whose
  state is on this machine (claims.json keeps only the last epoch);
* ``docs/claims/``: the index (``README.md``: the rules below, the words the tables use, one row per paper and
  dataset, the baseline checks, what each reproduction took), one page per paper, ``baselines.md``, and per dataset
  a figure of every configuration on one plane, training cost against AutoAttack accuracy, with the
  AutoAttack-evaluated front (cost, not seconds: one figure's rows may come from machines of different speed). Each
  page's generated part sits between its ``generated`` markers; the text around it is written by hand and kept;
* the results at a glance (one row per paper and dataset) in README.md between its ``results`` markers, where it
  has them.

The pages need no sweep state: ``raysweep claims --pages-only`` renders them from the committed claims.json and
``paired_times.json``, judging the committed rows again (tests/test_claims_pages.py checks those verdicts are
claims.json's and that the committed pages are current).

The verdict is computed, not written by hand, from the rules in ``rules.py`` (``RULES``), on AutoAttack accuracy (the
strongest attack; PGD-20 is shown beside it) and measured training time, both as means over the seeds:

* nothing is judged against a baseline below ``MIN_BASELINE_AA`` (30%) AutoAttack accuracy (not a converged robust
  model);
* "similar robustness" (and, for data pruning, similar clean accuracy by the same rule): the method's mean
  AutoAttack accuracy is at most ``SIMILAR`` (2 points) below the baseline's. Seeds that disagree widen nothing: a
  drop larger than that but within two standard errors is "not shown similar", and the why says the seeds disagree;
* "higher robustness": above the baseline's by more than two standard errors and at least 1 point;
* a speed claim holds when the ratio of mean training times (method / baseline) is at or below the claim's bound
  (``faster``: 0.75; ``third``: 0.45 for "about one third"; ``fraction``: 0.5; ``cheaper``: below 0.95 in time and
  cost). Where ``bench/paired_time.py`` has trained the pair side by side (``bench/results/paired_times.json``),
  that ratio is the one judged: a sweep's rows ran beside different neighbours, which moves a time ratio by up to
  ~20%; the sweep's ratio is printed beside it.

A claim holds when both its parts hold for at least one of the method's configurations (the paper defaults and,
where they fail, the configuration a tuning sweep found on validation data), partly when one part holds (the speed
part counts only for a robust model, AutoAttack at or above ``MIN_BASELINE_AA`` and at most ``PARTLY_MARGIN``, 5
points, below the baseline's), and does not hold otherwise; a
verdict other than "holds" is *provisional* while the claim's "(tuned)" configuration has not run (the tuning sweep
may still find the point that makes it hold); the why names the numbers behind it
and what went wrong (catastrophic overfitting, gradient masking flags, an unrobust teacher). Where a claim has several
baselines it must hold against each: data pruning against PGD-AT, TRADES and MART; Backward Smoothing
against TRADES-10 at TRADES' MNIST weight (beta 1) and at the weight its tuned point uses (``BS_TUNED_TRADES``);
FP-Better against FGSM-RS from either random start (clipped to the image, as Wong et al.'s CIFAR-10 code,
and unclipped, as their MNIST code, which on MNIST at eps 0.3 often decides whether FGSM-RS collapses).
A claim's ``control`` row (RRM: standard training of the student architecture) is not judged; the why quotes it,
so a reader sees what the method added over no method at all.

    raysweep claims                      # after scripts/reproduce.sh, from the repository's root
    raysweep claims --runs DIR           # sweeps stored elsewhere (default ./raysweep_runs)
    raysweep claims --pages-only         # docs/claims/ again from the committed bench/results/claims.json

Modules: ``rules`` (the rules as data), ``rows`` (sweeps read back as rows), ``judge`` (one claim's verdict, and
what it rests on), ``curves`` (per-epoch validation curves), ``pages`` (the Markdown pages and the README's
results), ``report`` (the figures), ``command`` (``raysweep claims``), ``tuned_point`` (the tuned-point rule).
"""
