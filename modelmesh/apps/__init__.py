"""Apps compose components into the runnable modes (runtime, controller, local)."""
