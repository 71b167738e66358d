"""Few or no examples: few-shot learning (ProtoNet, MAML on the episodic base in ``episodic``; SimpleShot and the
support-set probes on frozen features) and zero-shot learning (DAP, ESZSL, the bilinear model and CLIP on the base in
``zeroshot``).

One strategy per module; each registers itself on import (``strategies.registry``)."""
