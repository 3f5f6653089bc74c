"""Corral: a cluster manager for QEMU/KVM virtual machines."""

__version__ = "0.1.0"
