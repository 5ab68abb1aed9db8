"""One reconciler per kind of work: namespace objects, runtime Deployments, models, config."""
