"""The one home of every weight format: where pretrained weights come from, checkpoint files, components as folders,
portable checkpoints and the released XEmoGPT format.

| module | holds |
|---|---|
| :mod:`.pretrained` | where a component's weights come from: a local folder or a hub id through the local cache |
| :mod:`.files` | safe reads (``weights_only=True``), atomic writes, run checkpoints, consolidating sharded ones |
| :mod:`.components` | one component as a folder (``component.json`` + ``model.safetensors``) |
| :mod:`.portable` | checkpoints that rebuild without the pretrained folders they were trained from |
| :mod:`.official` | the released ``xemogpt.ckpt`` key map (W11H08Z/XEmoGPT) |
| :mod:`.errors` | the errors of everything that reads or writes weights (each names the file or key) |

Rebuilding a whole model from any of these lives in :mod:`xemogpt.models.loading`.
"""
