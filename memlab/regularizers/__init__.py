"""Train-time regularizers, each a Lightning callback speaking the protocol of
:mod:`memlab.regularizers.base`; :mod:`memlab.regularizers.build` names them."""
