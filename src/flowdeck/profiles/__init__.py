"""Profiles, users and access: who may do what in which profile (Kubeflow's namespaces).

`rbac` is the model every API enforces: roles in a profile grant scopes, a principal's rights are
the union over its bindings (and cluster-admin grants everything), and a token narrows them further.
Identity (passwords, tokens, logins, OIDC, trusted proxies) decides *who* calls; `rbac` decides
*what* they may do, in one function, so no route carries its own rules.
"""
