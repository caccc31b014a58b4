"""The bundled GPT trainer: ``model`` (GPT, GPTConfig), ``data`` (the shard loader), ``train`` (the
loop), ``checkpoint`` (save, load, resume), ``evaluate``, ``sample``, ``metrics`` (CSV and loss plot),
``runtime`` (device, precision, processes), ``mfu`` and ``config`` (TrainConfig)."""
