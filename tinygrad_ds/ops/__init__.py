"""One module per op family. An op is a `Function`: forward on arrays, backward in Tensor ops."""
