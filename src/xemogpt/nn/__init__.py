"""Neural building blocks every kind of component may use: transformer layers equal to the encoders' own, pooling,
padding masks (:mod:`xemogpt.nn.layers`) and the bridges' losses (:mod:`xemogpt.nn.losses`)."""
