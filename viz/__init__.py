"""Drawings of tinygrad_ds graphs (graphviz) and plots (matplotlib). Imports the library, never
the reverse."""


def _register() -> None:
    """A traced Graph shows its drawing in Jupyter once viz is imported (the library does not
    import viz); the drawing module itself loads on the first display."""
    from tinygrad_ds.graph.ir import register_display

    def draw_svg(graph):
        from .draw import draw_svg as draw

        return draw(graph)

    register_display(draw_svg)


_register()
