// Host of the precompiled LibTorch headers for executables (cmake/TorchPch.cmake); never run.
int main() { return 0; }
