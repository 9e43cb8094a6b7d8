"""neurodeploy's own Lava Processes and their fixed_pt ProcessModels.

They live in a folder of their own on purpose: Lava's compiler looks for a Process's models by importing
every module in the Process's folder as a top-level module, so this folder holds only self-contained
modules with absolute imports (no warnings, nothing else imported by accident)."""
