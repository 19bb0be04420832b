"""Inference: the synthesiser and what it is made of, by job.

* ``request``: the one schema of the synthesis knobs (``SYNTHESIS_PARAMS``), ``SynthesisRequest`` made from
  it, the CLI flags, range checks and the input errors;
* ``synthesizer``: ``Synthesizer`` (reference -> pieces -> S1 candidates -> choice -> S2 audio);
* ``reference`` (the 3-10 s reference clip), ``pieces`` (text -> phone ids), ``scoring`` (choosing among
  candidates), ``blends`` (ASR agreement, speaker similarity), ``cache`` (``ModelCache``), ``result``;
* ``samples``: the Training tab's listening samples (``python -m gpt_sovits.infer.samples``);
* ``__main__``: the CLI, ``python -m gpt_sovits.infer`` (it hands the synthesiser the CLVP reranker).
"""
