// Versioned encodings of the envelope and batch records on Kiln's topics.
