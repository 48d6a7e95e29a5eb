from typing_extensions import Buffer

def encode_rgb(
    rgb: Buffer, width: int, height: int, x_components: int, y_components: int
) -> str: ...
