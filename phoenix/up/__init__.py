"""`python -m phoenix up`: `pulumi preview --json --save-plan`, the rebuild guard, then
`pulumi up --plan` (what is applied is what was checked)."""
