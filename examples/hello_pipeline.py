"""Hello, flowdeck: a small pipeline written with the real kfp SDK.

    flowdeck run examples/hello_pipeline.py
    flowdeck run examples/hello_pipeline.py -p name=Ada -p 'numbers=[1, 2, 3]'

It greets, squares each number in parallel (dsl.ParallelFor), adds the squares up (dsl.Collected),
writes a small report artifact, and takes one of two branches depending on the total (dsl.If /
dsl.Else, joined with dsl.OneOf). Run it a second time and every task is a cache hit.
"""

from kfp import dsl

IMAGE = "python:3.11"  # used on Kubernetes; locally, Python components run in local processes


@dsl.component(base_image=IMAGE)
def greet(name: str) -> str:
    message = f"Hello, {name}!"
    print(message)
    return message


@dsl.component(base_image=IMAGE)
def square(x: int) -> int:
    print(f"{x} squared is {x * x}")
    return x * x


@dsl.component(base_image=IMAGE)
def add_up(values: list[int], report: dsl.Output[dsl.Markdown]) -> int:
    total = sum(values)
    with open(report.path, "w") as handle:
        handle.write(f"# Squares\n\n{' + '.join(map(str, values))} = {total}\n")
    return total


@dsl.component(base_image=IMAGE)
def verdict(greeting: str, total: int, size: str) -> str:
    message = f"{greeting} The squares add up to {total}, a {size} number."
    print(message)
    return message


@dsl.pipeline(name="hello-pipeline", description="Greet, square in parallel, add up, branch on the total.")
def hello_pipeline(name: str = "flowdeck", numbers: list[int] = [1, 2, 3, 4], threshold: int = 20) -> str:  # noqa: B006 (kfp needs a literal default)
    greeting = greet(name=name)
    with dsl.ParallelFor(numbers) as number:
        squared = square(x=number)
    total = add_up(values=dsl.Collected(squared.output))
    with dsl.If(total.outputs["Output"] > threshold):
        big = verdict(greeting=greeting.output, total=total.outputs["Output"], size="big")
    with dsl.Else():
        small = verdict(greeting=greeting.output, total=total.outputs["Output"], size="small")
    return dsl.OneOf(big.output, small.output)
