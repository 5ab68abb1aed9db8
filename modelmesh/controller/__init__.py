"""The Kubernetes controller: reconciles ServingRuntimes, InferenceServices, Predictors and
`model-serving-config` into runtime Deployments, Services and vmodels in the mesh."""
