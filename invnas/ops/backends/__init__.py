"""Involution backends; each is ``fn(input, weight, kernel_size, stride, padding, dilation)`` with
validated tensors and (h, w) tuples. reference: unfold; torch: shift-and-add in PyTorch;
cpu: native C++ kernels; cupy: CUDA kernels through CuPy."""
