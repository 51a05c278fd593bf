"""Back to the client: an upstream's answer rewritten for the vanity domain
(challenges, `Location` and `Link`, a blob's redirect to storage), which headers cross, and
what an edge may cache."""
