"""What a supplier's machine has (CPU, memory, disk, NVIDIA GPUs) and how fast it is.

Nothing is imported here on purpose: the CPU benchmark's worker processes import
`p2pnode.hardware.workload` and should not pay for psutil, py-cpuinfo or NVML.
"""
