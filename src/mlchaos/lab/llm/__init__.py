"""The lab's language models and the continuous-batching scheduler of its LLM engine.

``tokenizer`` (words ↔ ids), ``model`` (the forward pass), ``train`` (built at
lab build time from the standard library's docstrings), ``scheduler`` (batches,
KV budget, waiting queue, preemption, the hang of the gray failure).  The HTTP
server is :mod:`mlchaos.lab.services.llm_engine`.
"""
