"""Service principals, their hashed secrets, and the short-lived signed bearer tokens they exchange them for."""
