"""Training of the seed-004 GNNs (torch). ``netsim.learn.train`` and ``netsim.learn.torch_gnn``
are the only modules of netsim that import torch (install the ``netsim[gnn]`` extra);
``netsim.learn.data`` and ``netsim.learn.evaluate`` are numpy only."""
