"""Normalized-softmax contrastive loss over the global batch (paper 4.1, eq. 1-2).

Per replica: gather both embeddings from all replicas (ReplicaContext.all_gather, whose gradient
sums the upstream gradients of every replica and hands each replica its own slice), score the LOCAL
rows against the GLOBAL columns (logits = cosine / temperature), and take the softmax
cross-entropy with label smoothing in BOTH directions (image-to-text and text-to-image), summed.
Every other pair of the global batch is a negative.

Scaling convention: each replica returns sum(local cross-entropies) / global_batch_size, so that the
SUM over replicas is the global-batch mean of each direction (tf.distribute's usual convention;
gradients are then summed over replicas). Outside a strategy (or with one replica) the loss is the
plain batch mean. Label smoothing follows keras: target = (1 - s) * one_hot + s / num_columns.
Everything is computed in float32, whatever the towers' compute dtype.
"""
import tensorflow as tf


def _replica_context():
    context = tf.distribute.get_replica_context()
    if context is None:  # cross-replica context: treat as a single device
        return None
    return context if context.num_replicas_in_sync > 1 else None


def _smoothed_cross_entropy(logits, labels, label_smoothing):
    num_columns = tf.shape(logits)[1]
    targets = tf.one_hot(labels, num_columns, dtype=tf.float32)
    targets = targets * (1.0 - label_smoothing) + label_smoothing / tf.cast(num_columns, tf.float32)
    return tf.nn.softmax_cross_entropy_with_logits(labels=targets, logits=logits)


def contrastive_loss(image_emb, text_emb, temperature, label_smoothing=0.1, global_batch_size=None):
    """L2-normalized [b, D] image and text embeddings of this replica's pairs -> dict of scalars.

    Returns {"loss", "loss_image_to_text", "loss_text_to_image"} with loss = sum of the two
    directions, each scaled as in the module docstring. global_batch_size defaults to
    local batch x num_replicas.
    """
    image_emb = tf.cast(image_emb, tf.float32)
    text_emb = tf.cast(text_emb, tf.float32)
    temperature = tf.cast(temperature, tf.float32)
    local_batch = tf.shape(image_emb)[0]
    context = _replica_context()
    if context is None:
        all_image, all_text, offset, num_replicas = image_emb, text_emb, 0, 1
    else:
        all_image = context.all_gather(image_emb, axis=0)
        all_text = context.all_gather(text_emb, axis=0)
        offset = tf.cast(context.replica_id_in_sync_group, tf.int32) * local_batch
        num_replicas = context.num_replicas_in_sync
    if global_batch_size is None:
        global_batch_size = tf.cast(local_batch * num_replicas, tf.float32)
    global_batch_size = tf.cast(global_batch_size, tf.float32)

    labels = offset + tf.range(local_batch)  # the positive of local row i is global column offset + i
    logits_image_to_text = tf.matmul(image_emb, all_text, transpose_b=True) / temperature
    logits_text_to_image = tf.matmul(text_emb, all_image, transpose_b=True) / temperature
    loss_i2t = tf.reduce_sum(_smoothed_cross_entropy(logits_image_to_text, labels, label_smoothing))
    loss_t2i = tf.reduce_sum(_smoothed_cross_entropy(logits_text_to_image, labels, label_smoothing))
    loss_i2t = loss_i2t / global_batch_size
    loss_t2i = loss_t2i / global_batch_size
    return {"loss": loss_i2t + loss_t2i, "loss_image_to_text": loss_i2t, "loss_text_to_image": loss_t2i}
