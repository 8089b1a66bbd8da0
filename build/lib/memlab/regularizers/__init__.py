"""Train-time regularizers (spec §11), each a Lightning callback speaking the protocol of
:mod:`memlab.regularizers.base`."""
