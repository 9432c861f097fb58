"""Value types shared by every layer: send connectors, address spaces, routes, messages."""
