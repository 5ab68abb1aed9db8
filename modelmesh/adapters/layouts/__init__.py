"""Model layouts: pulled files -> the directory a model server loads from.

Each module has one entry point `lay_out(root, model_id, model_type, model_path, schema_path)`
that builds `<root>/<model id>` (symlinks back to the pulled files plus generated or
rewritten config files) and returns the path the driver hands to the server. The config
rewrites are pure functions on text so they can be tested table-driven without a server.
"""
