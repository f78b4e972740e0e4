// Object store protocol with file:// and s3:// implementations.
