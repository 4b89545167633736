"""`connect-inject migrate`: the takeover of a Consul chart release's injector, controller and CRDs.

The reference study's migration (`install-beside-consul.md` §3, options A and B) as a walk through
the live cluster: `cluster` reads (and, for the few steps we perform, annotates) the objects the
Consul chart left; `steps` decides from what it read which step is done, which is ours to do
(`--apply`) and which is the user's (a `helm upgrade` we print); `command` prints and applies.
Nothing here deletes an object: the steps that remove something are Helm's, run by the user.
"""
