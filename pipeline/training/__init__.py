"""What models are built and trained with: the model parts (model), adversarial training (adversarial), the optimizer
(fused_adam), tf.distribute strategies (distribute), metrics, figures (plots), and the pipeline's private Keras
names (_keras_private)."""
