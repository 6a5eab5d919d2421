// implemented by the common/ work
