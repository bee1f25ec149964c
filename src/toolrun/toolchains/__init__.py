"""The toolchain format: the model, the loader, expressions, the plan."""
