"""The shared kernel every app may import: domain errors, the background-work seam, the API base
classes and the socket consumer mixin. It imports no app; ``config/`` only wires."""
