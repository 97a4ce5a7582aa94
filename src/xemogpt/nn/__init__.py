"""Neural building blocks every kind of component may use: transformer layers equal to the encoders' own, pooling,
padding masks (:mod:`.layers`), learned-query attention (:mod:`.attention`), the bridges' losses (:mod:`.losses`)
and the optimiser every stage uses (:mod:`.optim`). ``nn.layers.BLOCKS`` names the layer classes FSDP wraps."""
