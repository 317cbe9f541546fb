print("sandbox-vcr")
