"""One request's trip: operations declared as decode, call and answer, and the runner that places them."""
