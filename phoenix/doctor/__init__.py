"""`python -m phoenix doctor`: what a first `pulumi up` usually trips on, checked against the
real cluster with the user's own token and SSH key before anything is created."""
