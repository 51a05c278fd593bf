"""The client's side: a request read and answered through h11 inside a
`BaseHTTPRequestHandler`."""
