"""The controller machinery: a work queue, an in-memory cache fed by the watches, a client
that reads from it, and the workers that run passes (controller-runtime is the model)."""
