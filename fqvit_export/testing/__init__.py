"""Test support shared by the tests, ``tools/gpu_check.py`` and ``bench/``, importable by name like ``numpy.testing``.

What lives here is what more than one harness needs and what no user-facing code does: the case table of every
``com.fqvit`` op (:mod:`.op_cases`), the kernels' C entry points on torch tensors (:mod:`.c_entries`, over the
torch-free binding :mod:`fqvit_export.deploy.capi`), the readers of what onnxruntime says about node placement
(:mod:`.placement`), and what a GPU run records about its machine (:mod:`.gpu`). Keeping it in the package means no
harness edits ``sys.path`` to reach another's file. It may import torch and onnx (it drives the PyTorch reference);
nothing else in the package imports it (``tests/test_layers.py`` puts it on the top layer, beside ``cli``).
"""
