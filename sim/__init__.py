"""Simulator of spatial DNN accelerators: mapping -> access counts -> energy."""
