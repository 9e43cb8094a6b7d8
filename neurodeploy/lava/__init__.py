"""Lava back-end: process-graph builder and runner (fixed_pt), attention process, netx writer."""
