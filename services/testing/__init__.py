"""Simulated AWS for the demo, the tests and the benchmark; never used by a deployed worker.

`moto_aws` serves moto (every AWS API, small organizations), `scale_aws` a server of its own
for the calls orgsync makes at organization scale, and `sample_org` draws the organization
both of them hold from one `OrgSpec`.
"""
