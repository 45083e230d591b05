"""Evaluation of the twin against the real interviewer (spec §2, §10).

* ``metrics``  – BERTScore (MiniLM, IDF-weighted, rescaled), embedding cosine, style agreement, the
  auxiliary style classifier's agreement, match rate against distractors, the discriminator;
* ``redteam``  – candidate turns that try to elicit prohibited questions, PII, insults or bias;
* ``run``      – the offline evaluation behind ``twin eval`` (import, split, train, ask, score, store);
* ``report``   – the HTML report with plots;
* ``cache``    – the on-disk embedding cache that keeps a run inside its time budget.
"""
